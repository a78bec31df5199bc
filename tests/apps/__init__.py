"""Small ASGI / aiohttp applications used by tests/test_integrations.py."""
