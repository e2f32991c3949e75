"""A workflow (Celery canvas) as a tree, read from the indexes the collector keeps.

Every task of a workflow carries its root id and its parent id; the collector indexes them in
``P idx:root:<root>`` (see ``keys.py``). So the whole tree costs two round trips: one pipeline for
the asked task's root id plus the root index, one pipeline of HMGETs for the members (a third
only when the asked id is a member rather than the root). The structure comes from ``parent_id``.

A group or chord sent through the API has no task of its own: its members share a root id that is
no task's id (the API makes one up). The tree then has a *virtual* root node without a name.

A chord's body is the exception to "the structure comes from ``parent_id``": Celery sends it from
whichever header task finished last, so by parent id it hangs under that one task. Nothing in
the events says "chord body", so the API records, for each workflow it sends, which tasks are
chord bodies and the first task of their header (``P workflow:<root>``, ``record_chord_bodies``).
The tree puts such a body beside its header — under the header's own parent, after it — with
``role: "chord_body"``. Chords sent by other producers are drawn by parent id, as before.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from event_collector import timeline
from event_collector.events import UNSUCCESSFUL_STATES
from event_collector.keys import TIMELINE_FIELD, Keys
from event_collector.replies import hash_text, text
from event_collector.task_ids import task_id_of

if TYPE_CHECKING:  # only for hints: the CLI imports this module for CHORD_BODY and starts fast
    import redis.asyncio as aioredis

# A bigger workflow is shown truncated (``truncated: true``); paging a tree is not worth it.
MAX_TREE_NODES: Final = 1000
CHORD_BODY: Final = "chord_body"
# How long the API's record of a workflow's chord bodies lives: past the longest default task TTL
# (14 days: failures and unfinished tasks), so it does not expire before the tasks it describes.
WORKFLOW_TTL_SECONDS: Final = 30 * 86400

_NODE_FIELDS: Final = (
    "name", "state", "queue", "worker", "parent_id", "root_id", "runtime", "exception",
    "retries", "first_seen", TIMELINE_FIELD,
)  # fmt: skip


class WorkflowNode(msgspec.Struct, omit_defaults=True):
    """One task of a workflow and the tasks it started (``parent_id`` = this task), except that a
    chord's body (``role: "chord_body"``) follows its header, under the header's parent."""

    id: str
    name: str | None = None
    state: str | None = None
    queue: str | None = None
    worker: str | None = None
    parent_id: str | None = None
    first_seen: float | None = None
    updated: float | None = None
    runtime: float | None = None
    exception: str | None = None
    retries: int | None = None
    # True for the root of a group/chord sent as a whole: an id, not a task.
    virtual: bool = False
    # "chord_body" for the body of a chord, drawn after its header rather than under the header
    # task that happened to finish last (which stays its ``parent_id``).
    role: str | None = None
    children: list[WorkflowNode] = []


class WorkflowTree(msgspec.Struct, frozen=True, omit_defaults=True):
    """A whole workflow with its roll-up state.

    ``state`` is ``failed`` as soon as one task failed (or was revoked/rejected; ``failed_nodes``
    says which), ``succeeded`` when every known task succeeded, else ``running``. Tasks a chain or
    chord has not sent yet are not known, so ``succeeded`` may be seen briefly before them.
    """

    root_id: str
    state: str
    total: int
    by_state: dict[str, int]
    root: WorkflowNode
    failed_nodes: list[str] = []
    truncated: bool = False


def _node(task_id: str, values: Sequence[bytes | str | None]) -> WorkflowNode | None:
    fields = {f: text(v) for f, v in zip(_NODE_FIELDS, values, strict=True) if v}
    if not fields:
        return None  # expired or forgotten, but still in the index until the next sweep
    fields.pop("root_id", None)
    events, first_seen = fields.pop(TIMELINE_FIELD, None), fields.pop("first_seen", None)
    times = timeline.timestamps(events or "", first_seen)
    fields.update(first_seen=times.get("first_seen"), updated=times.get("updated"))
    return msgspec.convert({**fields, "id": task_id}, WorkflowNode, strict=False)


def roll_up(nodes: Sequence[WorkflowNode]) -> tuple[str, list[str]]:
    """The workflow's state from its tasks' states, and the ids of the failed tasks."""
    failed = [n.id for n in nodes if n.state in UNSUCCESSFUL_STATES]
    if failed:
        return "failed", failed
    if nodes and all(n.state == "SUCCESS" for n in nodes):
        return "succeeded", []
    return "running", []


def build_tree(
    root_id: str,
    nodes: Sequence[WorkflowNode],
    truncated: bool = False,
    chord_bodies: Mapping[str, str] | None = None,
) -> WorkflowTree:
    """Link ``nodes`` (in first-seen order) by parent id under the root (virtual if unknown);
    ``chord_bodies`` (body id -> first header task id) go beside their header instead."""
    bodies = chord_bodies or {}
    by_id = {n.id: n for n in nodes}
    root = by_id.get(root_id) or WorkflowNode(id=root_id, virtual=True)

    def parent_of(node: WorkflowNode) -> WorkflowNode:
        seen = {node.id}
        while node.id in bodies:  # a body's place is its header's; that may be a body too
            header = by_id.get(bodies[node.id])
            if header is None or header is root or header.id in seen:
                return root
            seen.add(header.id)
            node = header
        parent = by_id.get(node.parent_id or "")
        # A member whose parent is unknown (a group member, or a parent already expired)
        # hangs under the root rather than disappearing from the tree.
        return parent if parent is not None and parent is not node else root

    for node in nodes:
        if node is root:
            continue
        if node.id in bodies:
            node.role = CHORD_BODY
        parent_of(node).children.append(node)
    state, failed = roll_up(nodes)
    by_state: dict[str, int] = {}
    for node in nodes:
        by_state[node.state or "UNKNOWN"] = by_state.get(node.state or "UNKNOWN", 0) + 1
    return WorkflowTree(
        root_id=root_id,
        state=state,
        total=len(nodes),
        by_state=by_state,
        root=root,
        failed_nodes=failed,
        truncated=truncated,
    )


async def record_chord_bodies(
    redis: aioredis.Redis, keys: Keys, root_id: str, bodies: Mapping[str, str]
) -> None:
    """Remember which tasks of the workflow ``root_id`` are chord bodies (id -> the first task
    of their header). Call before sending the workflow, so its tree is right from the start."""
    if not bodies:
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.workflow(root_id), mapping=dict(bodies))
        pipe.expire(keys.workflow(root_id), WORKFLOW_TTL_SECONDS)
        await pipe.execute()


class WorkflowReader:
    """Reads workflow trees from one store. Create once per process with the shared pool."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, max_nodes: int = MAX_TREE_NODES) -> None:
        self.redis = redis
        self.keys = keys
        self.max_nodes = max_nodes

    async def _root_and_members(self, task_id: str) -> tuple[str, list[str], int]:
        """The task's root_id, and the workflow's members (oldest first) and their number. A
        member is indexed in its own partition (keys.py): every partition is asked, and the
        oldest ``max_nodes`` of all are kept."""
        partitions = self.keys.each_partition()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.task(task_id), "root_id")
            for keys in partitions:
                pipe.zrange(keys.index_root(task_id), 0, self.max_nodes - 1, withscores=True)
                pipe.zcard(keys.index_root(task_id))
            root_id, *replies = await pipe.execute()
        members = heapq.merge(*([(s, m) for m, s in rows] for rows in replies[0::2]))
        oldest = [task_id_of(m) for _, m in itertools.islice(members, self.max_nodes)]
        return text(root_id), oldest, sum(int(n) for n in replies[1::2])

    async def tree(self, task_id: str) -> WorkflowTree | None:
        """The workflow ``task_id`` belongs to (as root or member); None if nothing is known."""
        root_id, members, size = await self._root_and_members(task_id)
        if root_id and root_id != task_id and not members:
            task_id = root_id  # asked for a member: read its root's index instead
            _, members, size = await self._root_and_members(task_id)
        ids = [task_id, *(m for m in members if m != task_id)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in ids:
                pipe.hmget(self.keys.task(member), _NODE_FIELDS)
            pipe.hgetall(self.keys.workflow(task_id))
            *rows, bodies = await pipe.execute()
        nodes = [n for i, row in zip(ids, rows, strict=True) if (n := _node(i, row)) is not None]
        if not nodes:
            return None
        chord_bodies = hash_text(bodies)
        return build_tree(task_id, nodes, truncated=size > self.max_nodes,
                          chord_bodies=chord_bodies)  # fmt: skip
