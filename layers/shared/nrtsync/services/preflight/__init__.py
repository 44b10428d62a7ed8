"""``nrtsync check``: a preflight of the mapping against the org's and the tenant's own describe."""
