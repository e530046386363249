"""The REST API: the smart-routing table, customer records and the customer lookup, over
HTTP with aiohttp, on the same store as the FastAGI server.

``app.create_app`` builds the aiohttp application; ``server.HTTPServer`` runs it beside the
FastAGI server (see `fastagi_router.app.Application`). ``openapi`` holds the OpenAPI 3.1
document served at ``/openapi.json``; ``tokens`` reads the ``api.tokens`` setting.

This package's ``__init__`` imports nothing, so that loading the settings (which checks the
token entries with ``tokens``) does not load aiohttp.
"""
