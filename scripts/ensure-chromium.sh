#!/usr/bin/env bash
# The web UI's browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# download is not reachable everywhere). Install it when missing and we are root; under CI a
# browser that cannot be had fails the run, elsewhere those tests are skipped with one line.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  if command -v chromium >/dev/null 2>&1; then exit 0; fi
fi
if [ -n "${CI:-}" ]; then
  echo "Chromium is missing and could not be installed: CI needs it for the web UI's tests." >&2
  exit 1
fi
echo "Chromium is missing (apt-get install chromium): the web UI's browser tests will be skipped." >&2
exit 0
