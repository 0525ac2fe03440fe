"""The consumers REST API: routing, validation and JSON, one module per concern.

:func:`guard.api.router.ConsumersAPI` is the WSGI application at the bottom of
guard's pipeline. It expects the guard middleware above it to have stored a
:class:`guard.context.RequestContext` in the environ.
"""
