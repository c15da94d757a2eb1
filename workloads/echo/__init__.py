"""The image `kubelab/echo`: an HTTP, TCP and UDP echo server for one pod (server.py; the bulk
streams in bulk.py). Run it with `python -m workloads.echo`."""
