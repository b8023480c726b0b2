"""Tests of the agent, against a fake gateway and fake model servers on 127.0.0.1."""
