"""The image's HEALTHCHECK: GET /healthz of `madoguchi serve` on 127.0.0.1:MADOGUCHI_PORT; exit 0 if it answers
200 within the timeout, else 1 (with the reason, which `docker inspect` shows)."""

import os
import sys
import urllib.request

PATH = "/healthz"  # liveness; readiness (/readyz) is for load balancers, not for restarting a container

url = f"http://127.0.0.1:{os.environ.get('MADOGUCHI_PORT', '3000')}{PATH}"
try:
    with urllib.request.urlopen(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure (refused, timeout, HTTP error) means unhealthy
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
