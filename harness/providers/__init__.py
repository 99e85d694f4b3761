"""Provider adapters, one module per API family, behind the interface in ``base``.

``registry`` holds the provider table (light: importing this package imports no adapter
and no httpx); ``base`` the interface, ``streams`` the streaming machinery and ``wire`` the
helpers adapters share. A third party adds a provider with ``register_provider`` or an
entry point in the ``harness.providers`` group (see ``harness.providers.registry``).
"""

from harness.providers.registry import ProviderInfo, register_provider

__all__ = ["ProviderInfo", "register_provider"]
