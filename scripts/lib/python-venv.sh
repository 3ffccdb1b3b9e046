# shellcheck shell=bash
# The project's Python venv, shared by scripts/test and scripts/demo (source it):
# .venv with python-bridge/example/requirements.txt (Django, DRF, ...) and the
# bridge installed editable (pip install -e python-bridge). pip runs only when
# the requirements, the bridge's pyproject.toml or the Python version changed
# since the last install (a stamp file in the venv), or when the packages do
# not import.
#
#   source "$ROOT/scripts/lib/python-venv.sh"
#   ensure_venv          # sets VENV and PY (the venv's python)
#   ensure_venv "$ROOT/.venv-django42" "django>=4.2,<4.3"
#                        # another venv, the same packages but this Django
#
# Needs ROOT (the repository). PYTHON picks the base interpreter (default python3).

VENV="$ROOT/.venv"
PY="$VENV/bin/python"

ensure_venv() { # ensure_venv [DIR [DJANGO_REQUIREMENT]]
    local base=${PYTHON:-python3} version want out django=${2:-}
    local requirements="$ROOT/python-bridge/example/requirements.txt" bridge="$ROOT/python-bridge"
    VENV=${1:-$ROOT/.venv}
    PY="$VENV/bin/python"
    local stamp="$VENV/.requirements-stamp"
    version=$("$base" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || return 1
    if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "Django 5.2 needs Python >= 3.10, $base is $version" >&2
        return 1
    fi
    local packages
    packages=$(cat "$requirements")
    if [[ -n "$django" ]]; then # the same packages, their Django line replaced
        packages=$(grep -viE '^django *([<>=!~]|$)' "$requirements"; echo "$django")
    fi
    want=$( { echo "$packages"; cat "$bridge/pyproject.toml"; echo "python=$version"; } | sha256sum | cut -d' ' -f1)
    if [[ -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$PY" -c 'import django, rest_framework, zmq, signal_bridge' 2>/dev/null; then
        echo "venv up to date ($VENV)"
        return 0
    fi
    if ! { [[ -x "$PY" ]] && "$PY" -c 'import sys; sys.exit(sys.version_info[:3] != tuple(map(int, sys.argv[1].split("."))))' "$version" 2>/dev/null; }; then
        echo "creating venv $VENV with $base $version"
        "$base" -m venv --clear "$VENV" || return 1
    fi
    echo "installing Python packages into $VENV"
    # Quiet unless it fails (an editable build prints setuptools chatter).
    out=$("$PY" -m pip install --disable-pip-version-check -q -r /dev/stdin <<< "$packages" 2>&1) \
        || { echo "$out" >&2; echo "pip install -r $requirements${django:+ (with $django)} failed" >&2; return 1; }
    out=$("$PY" -m pip install --disable-pip-version-check -q -e "$bridge" 2>&1) \
        || { echo "$out" >&2; echo "pip install -e $bridge failed" >&2; return 1; }
    "$PY" -c 'import django, rest_framework, zmq, signal_bridge' || { echo "django, rest_framework or signal_bridge does not import after pip install -e $bridge" >&2; return 1; }
    echo "$want" > "$stamp"
    "$PY" -m pip freeze --disable-pip-version-check | grep -iE '^(django|djangorestframework|psycopg|pytest|pytest-django|pyzmq|hypothesis)==|signal.bridge' | tr '\n' ' ' || true
    echo
}
