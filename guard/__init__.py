"""guard: policy-enforcing data access for OpenStack-style WSGI services."""
