"""Tiny real model servers (llama.cpp, Piper, PocketSphinx, a procedural image maker) for demos and tests.

Each runs as its own process and speaks the OpenAI HTTP API, like any backend a member runs at home.
"""
