"""The pytest plugin of ``harness`` (entry point ``harness``; disable with ``-p no:harness``).

``plugin`` is the entry module; the concerns live in private modules behind it.
"""
