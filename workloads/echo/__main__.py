"""`python -m workloads.echo`: the image `kubelab/echo` (workloads/echo/server.py)."""

from workloads.echo.server import main

main()
