"""services: imports kubelab first, for its process-wide settings (kubelab/__init__.py)."""

import kubelab  # noqa: F401
