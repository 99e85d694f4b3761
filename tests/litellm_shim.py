"""A stand-in for ``import litellm``: a module that only re-exports harness's public names.

The compatibility tests import it as ``litellm`` and run LiteLLM-style code against it, as a
user does after swapping ``import litellm`` for ``import harness as litellm``.
"""

from harness import *  # noqa: F403
from harness import __all__ as __all__
