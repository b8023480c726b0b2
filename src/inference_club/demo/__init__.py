"""Tiny real model servers for demos and tests: llama.cpp, Piper, PocketSphinx, procedural images.

Each runs as its own process and speaks the OpenAI HTTP API, like any backend a member runs at home.
"""
