"""kubelab: the shared library every actor imports (DESIGN §6).

Importing it first thing turns off gRPC's fork handlers, before gRPC loads (it reads the
setting once, at import). Every actor forks only to exec at once (pods, `ip`, the
supervisor's actors), and uvloop forks with the handlers running: with another thread
inside a gRPC call (the lease keeper always is) they can deadlock the whole process, as
a lab node agent did under load (grpc/grpc#22624). gRPC's own advice for fork-then-exec
programs is this setting; a user's explicit value is kept.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
