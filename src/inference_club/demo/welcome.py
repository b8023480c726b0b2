"""What the demo prints once every model is online: where to point a client, and how."""

import os
import shlex
import sys
from pathlib import Path

from inference_club.demo.credentials import DEMO_USER, PASSWORD_FILE, DemoCredentials
from inference_club.demo.lineup import DEMO_MODELS

CHAT_MODEL = DEMO_MODELS[0].model_id


def welcome_text(gateway_url: str, credentials: DemoCredentials, data_dir: Path) -> str:
    """The block printed when the demo is ready; it holds the API key, for this terminal only."""
    models = "\n".join(
        f"    {model.model_id:<24} {model.service_type:<6} {model.label}" for model in DEMO_MODELS
    )
    data = shlex.quote(_shown_path(data_dir))
    key_file = shlex.quote(_shown_path(credentials.api_key_path))
    return f"""
The club is running, with the member '{DEMO_USER}' and its provider '{credentials.provider_name}'.

  OpenAI base URL:  {gateway_url}/v1
  API key:          {credentials.api_key}
                    (saved in {key_file}; the same key on every run with --data {data})
  Dashboard:        {gateway_url}/
{_sign_in(credentials, data_dir)}
  Logs:             {_shown_path(data_dir / "logs")}

  Models:
{models}

Try it from another terminal:

  export OPENAI_BASE_URL={gateway_url}/v1
  export OPENAI_API_KEY=$(cat {key_file})
  {shlex.quote(_shown_path(Path(sys.executable)))} - <<'EOF'
  from openai import OpenAI

  client = OpenAI()  # reads OPENAI_BASE_URL and OPENAI_API_KEY
  reply = client.chat.completions.create(
      model="{CHAT_MODEL}",
      messages=[{{"role": "user", "content": "Say hello to the club."}}],
  )
  print(reply.choices[0].message.content)
  EOF

README.md has more: streaming, speech, transcription and images.
Press Ctrl-C to stop the gateway, the agent and the model servers.
"""


def _sign_in(credentials: DemoCredentials, data_dir: Path) -> str:
    indent = " " * 20
    data = shlex.quote(_shown_path(data_dir))
    change = f"{indent}change it: {cli_name()} users set-password {DEMO_USER} --data {data}"
    if credentials.dashboard_password is None:
        return f"{indent}user {DEMO_USER}, with the password you gave it\n{change}"
    saved = shlex.quote(_shown_path(data_dir / PASSWORD_FILE))
    password = credentials.dashboard_password
    return f"{indent}user {DEMO_USER}, password {password} (saved in {saved})\n{change}"


def cli_name() -> str:
    """How the person started this command, so the commands printed work as they are."""
    invoked = Path(sys.argv[0])
    if invoked.name == "inference-club" and invoked.parent != Path():
        return shlex.quote(_shown_path(invoked.absolute()))
    return "inference-club"


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, for shorter commands."""
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(relative) if str(relative) != "." else os.curdir
