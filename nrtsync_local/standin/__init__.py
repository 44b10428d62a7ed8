"""What the HTTPS stand-ins (Salesforce, Zuora) share: ``tls`` (TLS from a throwaway CA, the ready file) and
``process`` (a stand-in as a child process, started and stopped by its pid, and the clients of its control API)."""
