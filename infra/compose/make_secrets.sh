#!/usr/bin/env bash
# Create the secret files infra/docker-compose.yml mounts (infra/secrets/, git-ignored),
# with riskstream's own generators. Existing files are kept: run it again safely.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DIR=infra/secrets
mkdir -p "$DIR"
chmod 0700 "$DIR"
"$PY" - "$DIR" <<'PYEOF'
import sys
from pathlib import Path

from services.registry.signing import PRIVATE_KEY_FILE, generate_key_pair
from services.scoring.auth import write_local_key, write_local_tokens

directory = Path(sys.argv[1])
write_local_tokens(directory / "scoring_tokens.json")  # {"score": ..., "admin": ...}
write_local_key(directory / "card_hash.key")
if not (directory / PRIVATE_KEY_FILE).exists():
    generate_key_pair(directory)  # signing_key.pem (0600), signing_key.pub.pem
password = directory / "grafana_admin_password"
if not password.exists():
    import secrets

    password.touch(mode=0o600)
    password.write_text(secrets.token_urlsafe(24))
PYEOF
ls -l "$DIR"
