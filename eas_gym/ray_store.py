"""The evaluation store as a Ray service, for searches spread over several machines.

SQLite in WAL mode is safe for the processes of one host only. On a multi-node Ray cluster,
:class:`~eas_gym.ray_vector.RayVectorEnv` starts one :class:`StoreService` actor pinned to the
driver's node, where the store file lives; every env copy, on any node, opens
``store="ray-store:<actor name>"`` and gets a :class:`RemoteStore`, a proxy with
:class:`~eas_gym.store.EvalStore`'s interface. Evaluations, weights (tensors travel through
Ray's object store) and locks all pass through that one actor, whose calls run one at a time.

Locks are leases: :meth:`RemoteStore.lock` renews its lease while the holder works, and a lease
whose holder died (a killed worker) expires after ``lease_seconds``, so a crash cannot block the
others; the restarted worker simply asks again. Leases live in the actor's memory: if the
service itself restarts they are forgotten, and at worst two workers train the same child; the
store stays consistent (the first row wins and each row names its own weights file).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from eas_gym.net import StateDict
from eas_gym.store import BY_NET, SERVICE_PREFIX, EvalStore, Evaluation, Store

__all__ = ["PREFIX", "RemoteStore", "StoreService", "import_ray", "start_store_service"]

PREFIX = SERVICE_PREFIX
"""A ``store`` argument starting with this names a running :class:`StoreService` actor
(defined in :mod:`eas_gym.store`, whose :func:`~eas_gym.store.open_store` reads it)."""

LEASE_SECONDS = 60.0
_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 2.0


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            'the Ray executor needs Ray: pip install "eas-gym[ray]" (or pip install "ray>=2.9")'
        ) from e
    return ray


class StoreService:
    """Owns one :class:`~eas_gym.store.EvalStore` and serves it (run as a Ray actor).

    Args:
        path: The SQLite file on this actor's node.
    """

    def __init__(self, path: str) -> None:
        self.store = EvalStore(path)
        self.leases: dict[str, tuple[str, float]] = {}  # lock name -> (owner, expiry)

    def get(
        self, net: str, key: str, lineage: str = BY_NET, start_digest: str = ""
    ) -> Evaluation | None:
        """As :meth:`EvalStore.get`."""
        return self.store.get(net, key, lineage, start_digest)

    def with_weights(self, net: str, key: str, start_digest: str = "") -> Evaluation | None:
        """As :meth:`EvalStore.with_weights`."""
        return self.store.with_weights(net, key, start_digest)

    def set_weights(self, evaluation: Evaluation, weights: str) -> None:
        """As :meth:`EvalStore.set_weights`."""
        self.store.set_weights(evaluation, weights)

    def put(self, evaluation: Evaluation) -> None:
        """As :meth:`EvalStore.put`."""
        self.store.put(evaluation)

    def all(self, key: str | None = None) -> list[Evaluation]:
        """As :meth:`EvalStore.all`."""
        return self.store.all(key)

    def save_weights(self, net: str, key: str, state: StateDict) -> str:
        """As :meth:`EvalStore.save_weights`."""
        return self.store.save_weights(net, key, state)

    def load_weights(self, evaluation: Evaluation) -> StateDict | None:
        """As :meth:`EvalStore.load_weights`."""
        return self.store.load_weights(evaluation)

    def acquire(self, name: str, owner: str, lease: float) -> bool:
        """Take (or renew) lock `name` for `lease` seconds if free, expired or already ours."""
        now = time.monotonic()
        holder = self.leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self.leases[name] = (owner, now + lease)
        return True

    def release(self, name: str, owner: str) -> None:
        """Give lock `name` back (a no-op unless `owner` holds it)."""
        if self.leases.get(name, ("",))[0] == owner:
            del self.leases[name]

    def close(self) -> None:
        """Close the store."""
        self.store.close()


class RemoteStore:
    """A :class:`~eas_gym.store.Store`, served by a :class:`StoreService` actor.

    Args:
        address: ``"ray-store:<actor name>"``; the actor must run in this Ray job.
        lease_seconds: How long a lock outlives a holder that stopped renewing it.
    """

    def __init__(self, address: str, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._connect(address, lease_seconds)

    def _connect(self, address: str, lease_seconds: float) -> None:
        if not address.startswith(PREFIX):
            raise ValueError(f"Expected a store address {PREFIX}<actor name>, got {address!r}")
        self.path, self.lease_seconds = address, lease_seconds
        self._ray = import_ray()
        try:
            self._actor = self._ray.get_actor(address[len(PREFIX) :])
        except ValueError as e:
            raise ValueError(f"no store service {address!r} is running in this Ray job") from e

    def _call(self, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(self._actor, method).remote(*args))

    def get(
        self, net: str, key: str, lineage: str = BY_NET, start_digest: str = ""
    ) -> Evaluation | None:
        """As :meth:`EvalStore.get`."""
        return self._call("get", net, key, lineage, start_digest)

    def with_weights(self, net: str, key: str, start_digest: str = "") -> Evaluation | None:
        """As :meth:`EvalStore.with_weights`."""
        return self._call("with_weights", net, key, start_digest)

    def set_weights(self, evaluation: Evaluation, weights: str) -> None:
        """As :meth:`EvalStore.set_weights`."""
        self._call("set_weights", evaluation, weights)

    def put(self, evaluation: Evaluation) -> None:
        """As :meth:`EvalStore.put`."""
        self._call("put", evaluation)

    def all(self, key: str | None = None) -> list[Evaluation]:
        """As :meth:`EvalStore.all`."""
        return self._call("all", key)

    def save_weights(self, net: str, key: str, state: StateDict) -> str:
        """As :meth:`EvalStore.save_weights` (the tensors are sent to the service's node)."""
        return self._call("save_weights", net, key, {k: v.detach().cpu() for k, v in state.items()})

    def load_weights(self, evaluation: Evaluation) -> StateDict | None:
        """As :meth:`EvalStore.load_weights`."""
        return self._call("load_weights", evaluation)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock across the cluster, held as a lease renewed while inside."""
        owner = uuid.uuid4().hex
        wait = _POLL_SECONDS
        while not self._call("acquire", name, owner, self.lease_seconds):
            time.sleep(wait)
            wait = min(2 * wait, _MAX_POLL_SECONDS)  # many waiters: spare the one actor
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_seconds / 3):
                try:
                    kept = self._call("acquire", name, owner, self.lease_seconds)
                except Exception as e:  # the service restarting: try again next period
                    kept, reason = False, f"{type(e).__name__}: {e}"
                else:
                    reason = "another worker took it after the lease expired"
                if not kept:  # results stay consistent: rows are first-writer-wins
                    warnings.warn(f"lost the store lock {name!r}: {reason}", stacklevel=1)

        renewer = threading.Thread(target=renew, daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            try:
                self._call("release", name, owner)
            except Exception as e:  # never hide the body's own exception; the lease expires
                warnings.warn(f"releasing the store lock {name!r}: {e}", stacklevel=1)

    def close(self) -> None:
        """Nothing to close here: the service belongs to whoever started it."""

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "lease_seconds": self.lease_seconds}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._connect(state["path"], state["lease_seconds"])


if TYPE_CHECKING:  # mypy checks that the client has every member of the protocol
    _REMOTE_IS_A_STORE: type[Store] = RemoteStore


def start_store_service(path: str, *, name: str | None = None) -> tuple[Any, str]:
    """Start a :class:`StoreService` for `path` on this node; returns (actor, store address).

    The actor is pinned here because the file is here, and restarted if its process dies.
    """
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = name or f"eas-store-{uuid.uuid4().hex[:12]}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = (
        ray.remote(StoreService)
        .options(
            name=name,
            num_cpus=0,
            scheduling_strategy=here,
            max_restarts=-1,
            max_task_retries=-1,
        )
        .remote(path)
    )
    ray.get(actor.get.remote("", ""))  # up and serving before any worker asks for it
    return actor, PREFIX + name
