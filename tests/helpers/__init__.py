"""Helpers shared by test modules; test modules import from here, never from each other.

``local_server``: a scripted HTTP/1.1 server on 127.0.0.1 (and the request reader the fault
server shares); ``virtual_time``: an event loop whose clock jumps to the next timer;
``streaming``: SSE bodies, paced streams and ``run_stream`` for the provider streaming tests;
``report_docs``: result records and run documents for the report tests; ``pieces``: bytes cut
into pieces as a socket delivers them.
"""
