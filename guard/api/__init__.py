"""The consumers REST API: routing, validation and JSON, one module per concern.

:func:`guard.api.app.make_app` builds the WSGI application at the bottom of
guard's pipeline (a :class:`guard.api.router.RoutedApp`). It expects the guard
middleware above it to have stored a :class:`guard.context.RequestContext` in
the environ.
"""
