"""Every Redis key taskpulse uses, and nothing else.

The collector is the only writer; the read side (``event_collector.read``) and the API only read,
except for the audit events the API appends to the stream (``event_collector.stream`` owns every
append). Lua scripts build no key from a bare prefix: they are handed key names (KEYS) or the
templates below (``Keys.store_script_templates``), so a key's shape is written down here only.
``P`` below is the key prefix (``TASKPULSE_KEY_PREFIX``, default ``tp:``). Timestamps are float
seconds since the epoch (UTC), exactly as the Celery event carried them.

Source of truth
  P events               STREAM   one entry per accepted (non-duplicate) event, field ``e`` =
                                  the normalized ``Event``: written by the collector as a
                                  compact MessagePack array (stored.py: type code, fields in
                                  order up to the last non-default one, a UUID task id as 16
                                  bytes, no event id: it is recomputed), by the API (audit
                                  events) as a JSON object; ``stored.decode_stored`` reads both.

Per task (expire together, per-state TTL once the task is finished)
  P task:<id>            HASH     the task record. Fields (absent when unknown):
                                  name args kwargs queue routing_key exchange priority worker
                                  state (PENDING|RECEIVED|STARTED|SUCCESS|FAILURE|RETRY|
                                  REVOKED|REJECTED), runtime retries result exception
                                  traceback parent_id root_id eta expires signum terminated
                                  expired requeue progress_current progress_total
                                  root_id is absent when the task is its own root.
                                  note labels (operator annotations, JSON)
                                  _tl: the timeline (TIMELINE_FIELD), and the only place the
                                  task's event timestamps are stored: the record's sent
                                  received started succeeded failed retried revoked rejected
                                  (latest of each kind), progress timestamp, first_seen
                                  (earliest, the index score) and updated (latest) are read
                                  off it (timeline.py, store.lua ``scan_timeline``). Entries
                                  sorted by (timestamp, event id), each
                                  ``\n<eid> <timestamp> <code><hostname>`` plus ``\t<json>``
                                  when the event carries small state fields (retries runtime
                                  exception[:200] progress_* terminated expired signum
                                  requeue); code = events.TIMELINE_CODES (s r b o f y v j p),
                                  upper-case when the hostname is the entry before's (then
                                  left out). Capped at TIMELINE_MAX newest entries plus the
                                  newest of each kind. It is also the task's dedup set: an
                                  event whose ``\n<eid> `` is there is a duplicate. Kept in
                                  the hash, not a key of its own: one key per task (memory,
                                  EXPIRE calls) and no ZADD per event.
                                  Other hidden writer bookkeeping (readers ignore fields
                                  starting with ``_``): _pc (counter increments waiting for
                                  the task's name); once the timeline was trimmed: _dd (ids
                                  of trimmed task-state events, for dedup past the cap),
                                  _tlcut (the newest trimmed timestamp) and first_seen.

Indexes (score = the task's ``first_seen``: its earliest known event timestamp; member =
``task_ids.index_member(id)``: a canonical UUID as ``~`` + 22 base64url characters, 16 bytes
less per entry, any other id as it is; ``task_ids.task_id_of`` reads it back)
  The four indexes every task is in (state, name, queue, worker) are *segmented*
  (segments.lua, read through segments.py): the key below is a directory ZSET, segment id ->
  the lowest score the segment covers, and the entries are in segment ZSETs
  ``P seg:<id>:<the index key>`` of at most INDEX_SEGMENT_MAX entries, each holding the scores
  from its directory score up to the next one's. Small sorted sets stay listpacks (~50 B an
  entry instead of ~130 B): a task's four entries were a third of its memory.
  P seg:summary          HASH     index key -> "<entries> <newest segment id> <its start>
                                  <its entries>" (segments.size_of reads the count)
  P seg:cards:<index>    HASH     segment id -> its number of entries (a count over a time
                                  window reads the segments inside it in one HMGET)
  P idx:state:<STATE>    ZSET     tasks currently in STATE (moved on every state change)
  P idx:nostate          ZSET     tasks with no state yet (only a task-progress event seen)
                                  Every task is in exactly one of these (``Keys.state_indexes``):
                                  together they are the list of all tasks, so there is no
                                  ``idx:all`` (one ZADD and ~140 B per task less); readers merge
                                  them by score.
  P idx:name:<name>      ZSET
  P idx:queue:<queue>    ZSET
  P idx:worker:<host>    ZSET
  The other indexes are plain sorted sets (small, or one per parent/fingerprint):
  P idx:children:<id>    ZSET     direct children of a task (by parent_id)
  P idx:root:<id>        ZSET     every task of a workflow (by root_id), except the root itself
  P idx:fp:<fp>          ZSET     failed tasks whose latest failure has fingerprint <fp> (the
                                  task hash's ``fingerprint`` field; failures.py)

Failure groups (one per fingerprint = exception type + masked message, failures.py; a failure
counts once per task, by the FAILURE counter's rule; written by store.lua with the batch)
  P fail:groups          ZSET     fingerprint -> last seen
  P fail:g:<fp>          HASH     count first last exception (type) message (a raw sample, the
                                  latest) example (the latest failed task id), names (the task
                                  names seen failing so, one per line), and the hourly counts of the
                                  last day in FAILURE_HOUR_SLOTS slots: h<hour % slots> ->
                                  "<hour start>:<count>"
                                  (a slot holding an older hour counts 0 and is reused)
  P fail:exc:<type>      SET      fingerprints of that exception type (``exception=`` filter:
                                  their ``idx:fp`` indexes merged; no per-task entry more)

Counters (exact: only non-duplicate events count; a final kind SUCCESS/FAILURE/REVOKED at most
once per task, so a reconciler's synthetic final event and the late real one count once)
  P cnt:total            HASH     field ``<name>|<KIND>`` -> all-time count
  P cnt:m:<bucket>       HASH     same fields, per minute; bucket = floor(ts / 60) * 60
  P cnt:h:<bucket>       HASH     per hour   (floor(ts / 3600) * 3600)
  P cnt:d:<bucket>       HASH     per day    (floor(ts / 86400) * 86400, UTC days)
                                  KIND is the event kind: SENT RECEIVED STARTED SUCCESS FAILURE
                                  RETRY REVOKED REJECTED.

Workers
  P workers              ZSET     hostname, score = last event timestamp from that worker
  P worker:<host>        HASH     hostname last_heartbeat freq active processed loadavg (JSON)
                                  sw_ident sw_ver sw_sys pid online (1/0) online_at offline_at
  P wdd:<eid>            STRING   dedup marker for worker events, short TTL

Queues (written by the collector's broker poller, read by the API)
  P queues               HASH     queue name -> length (messages waiting, all priorities)
  P queues:consumers     HASH     queue name -> consumer count (RabbitMQ only)
  P queues:workers       HASH     queue name -> workers consuming it (Celery inspect)
  P queues:processes     HASH     queue name -> pool processes of those workers
  P queues:updated       STRING   timestamp of the last poll

Producer API
  P idem:<key>           STRING   idempotency key -> the first enqueue's request fingerprint
                                  and response (JSON), TTL; written by the API (SET NX)
  P enq:<id>             STRING   a task the API just enqueued (name, queue, time; JSON), short
                                  TTL; read by the API only while ``P task:<id>`` is missing
                                  (producer_api/enqueued.py)
  P workflow:<root_id>   HASH     a workflow sent through the API: chord body task id -> the id of
                                  the first task of that chord's header, TTL
                                  (``workflows.WORKFLOW_TTL_SECONDS``); written by the API before
                                  it sends the workflow. Celery events cannot tell a chord's body
                                  from a task its parent started, and the tree needs to. Kept by
                                  ``rebuild``: no event carries it.
  P ui:session:<hash>    HASH     a web console sign-in: token_id csrf created. <hash> = SHA-256
                                  of the session id the browser holds in its cookie, so a store
                                  dump holds no usable session. TTL = the idle timeout, renewed
                                  on every request (producer_api/console/sessions.py).
  P ui:login:<hash>      STRING   a one-time sign-in link: SHA-256 of its code -> the token id it
                                  signs in as; short TTL, deleted by the GETDEL that redeems it.
                                  Both are dropped by ``rebuild`` (console users sign in again).
  Besides these five, the API writes only the audit events it appends to ``P events``.

Beat schedule (celery-redbeat's own layout, under B = ``redbeat:`` + P, outside ``P*`` on purpose:
``rebuild`` drops ``P*`` projections, and a schedule is configuration, not a projection)
  B<name>                HASH     one entry: ``definition`` (task, schedule, args, kwargs, options,
                                  enabled; JSON) and ``meta`` (last_run_at, total_run_count);
                                  ``taskpulse_resumed`` once the API resumed it (the last real
                                  run before that; producer_api.schedule_store.Resumed)
  B:schedule             ZSET     entry key -> next due time;  B:lock  STRING  the active beat
  B:seeded               SET      static entries already seeded once (``Keys.beat_seeded``,
                                  worker.dynamic_schedule)

Fleet control (under F = ``fleet:`` + P, outside ``P*`` like beat's entries: it is
configuration an operator set, not a projection ``rebuild`` may drop; event_collector/fleet.py)
  F limits               HASH     task name -> the rate/time limits an operator put in force
                                  (``fleet.TaskLimits``, JSON): shown by the API, re-applied to
                                  workers that come online later
  F paused               HASH     queue -> who paused it, when, and the workers that consumed it
                                  then (``fleet.PausedQueue``, JSON): resume adds the consumer
                                  back on those; a worker coming online has it cancelled too

Collector bookkeeping
  P collector:<id>       HASH     a running collector's heartbeat and counters (TTL)
  P migrating:<index>    ZSET     a plain index (stores written before indexes were segmented)
                                  while the collector's start converts it (segments.py)

Partitions and hash tags (``TASKPULSE_PARTITIONS``, ``Keys`` below, docs/scaling.md): with more
than one partition, or on a Redis Cluster without a tag in the prefix, every per-task key above
(stream, task records, indexes, counters, failure groups) is ``P{p<N>}:<name>``, N =
``partition_of(task id)``: counters and failure groups then count that partition's tasks, and
readers sum them (groups merged by fingerprint); worker keys, queue keys and the stream of
task-less events are ``P{g}:<name>``. One partition on one Redis keeps the names above.

Collector leases (partitioned stores, event_collector/leases.py)
  P lease:<N>            STRING   id of the collector applying partition N's events (PX TTL)
  P lease:members        ZSET     collector id -> time of its last lease round
"""

from __future__ import annotations

import re
import zlib
from typing import Final

import msgspec

from event_collector.events import STATE_PRECEDENCE

TIMELINE_FIELD: Final = "_tl"

COUNTER_FIELD_SEPARATOR: Final = "|"
# Entries per index segment: under Redis' default zset-max-listpack-entries (128), so every
# segment stays a listpack (segments.py). A ZADD into a listpack scans it for the member: 64
# kept the write path within a few % of plain sorted sets, where 120 cost ~30% more Redis CPU,
# and took the least memory of 32 / 64 / 120 (bench/memory.py).
INDEX_SEGMENT_MAX: Final = 64
# Hourly failure counts kept per group (``fail:g:<fp>`` fields h0..h23): one day.
FAILURE_HOUR_SLOTS: Final = 24

# TASKPULSE_KEY_PREFIX's default, for every role that reads the store.
DEFAULT_KEY_PREFIX: Final = "tp:"
BUCKET_SECONDS: Final[dict[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
_BUCKET_CODES: Final[dict[str, str]] = {"minute": "m", "hour": "h", "day": "d"}


_SEGMENTED_STARTS: Final = ("idx:state:", "idx:name:", "idx:queue:", "idx:worker:")

_HASH_TAG: Final = re.compile(r"\{[^}]+\}")


def has_hash_tag(prefix: str) -> bool:
    """True when every key under ``prefix`` hashes by a tag inside the prefix itself (Redis
    hashes a key by the first ``{...}`` with something inside)."""
    first = prefix.find("{")
    return first >= 0 and _HASH_TAG.match(prefix, first) is not None


def partition_of(task_id: str, partitions: int) -> int:
    """The partition a task's keys live in: CRC-32 of its id (as the store keys it, UTF-8)
    modulo the number of partitions. Pure and stable: every process, language and release
    agrees, so readers go straight to a task's partition."""
    return zlib.crc32(task_id.encode()) % partitions if partitions > 1 else 0


class Keys(msgspec.Struct, frozen=True):
    """Key builder for one prefix and one partition. Cheap to create; create once per process
    (``Keys.layout``) and pass it down; ``in_partition`` / ``of_task`` give the others.

    Layouts (DESIGN.md, Scaling out; docs/scaling.md):
    - one partition on one Redis (the default): every key as listed above, no hash tag, so a
      store written before partitions existed is read as it is;
    - tagged (more than one partition, or any Redis Cluster): a partition's keys (its stream,
      task records, indexes, counters) start ``P{p<N>}:``, so each partition is one hash slot
      and one script call touches one slot; the workers' keys, the queue lengths (written in
      one transaction) and the stream of events that belong to no task (worker events, audit
      events without a task) start ``P{g}:``; the rest (API and console keys, collector
      bookkeeping, leases) keep plain ``P`` names: each is read or written alone.
    """

    prefix: str = DEFAULT_KEY_PREFIX
    partitions: int = 1
    # A Redis Cluster: tags even with one partition (a script's keys must share a slot).
    cluster: bool = False
    # The partition whose stream, indexes and counters this builder names.
    partition: int = 0

    def __post_init__(self) -> None:
        if self.partitions < 1 or not 0 <= self.partition < self.partitions:
            raise ValueError(
                f"partition {self.partition} of {self.partitions}: TASKPULSE_PARTITIONS must be"
                " at least 1"
            )

    @classmethod
    def layout(cls, prefix: str, partitions: int = 1, cluster: bool = False) -> Keys:
        """Partition 0's builder for a store (the collector's and the API's entry point)."""
        return cls(prefix=prefix, partitions=partitions, cluster=cluster)

    @property
    def tagged(self) -> bool:
        """Keys carry partition tags: several partitions, or a cluster whose prefix has no hash
        tag of its own (one with a tag, ``{tp}:``, puts every key in its slot already)."""
        return self.partitions > 1 or (self.cluster and not has_hash_tag(self.prefix))

    def _base(self, partition: int) -> str:
        return f"{self.prefix}{{p{partition}}}:" if self.tagged else self.prefix

    @property
    def _partition_base(self) -> str:
        return self._base(self.partition)

    @property
    def _global_base(self) -> str:
        return f"{self.prefix}{{g}}:" if self.tagged else self.prefix

    # -- partitions -------------------------------------------------------------------------

    def partition_of(self, task_id: str) -> int:
        return partition_of(task_id, self.partitions)

    def in_partition(self, partition: int) -> Keys:
        if partition == self.partition:
            return self
        return msgspec.structs.replace(self, partition=partition)

    def of_task(self, task_id: str) -> Keys:
        """The builder of the partition ``task_id`` lives in."""
        return self.in_partition(self.partition_of(task_id))

    def each_partition(self) -> list[Keys]:
        return [self.in_partition(p) for p in range(self.partitions)]

    @property
    def streams(self) -> list[str]:
        """Every stream of the store: each partition's and the global one (one stream when
        untagged)."""
        names = [k.events for k in self.each_partition()]
        return names if self.global_events in names else [*names, self.global_events]

    @property
    def swept_streams(self) -> list[str]:
        """The streams this partition's retention sweep trims: its own, and partition 0's
        sweep the global one too."""
        own = [self.events]
        return own if self.partition or self.global_events in own else [*own, self.global_events]

    # -- per partition ----------------------------------------------------------------------

    @property
    def events(self) -> str:
        """This partition's stream (untagged: the only stream)."""
        return f"{self._partition_base}events"

    def task(self, task_id: str) -> str:
        """The task's record, in the task's own partition whatever this builder's is."""
        return f"{self._base(self.partition_of(task_id))}task:{task_id}"

    def index_state(self, state: str) -> str:
        return f"{self._partition_base}idx:state:{state}"

    @property
    def index_stateless(self) -> str:
        return f"{self._partition_base}idx:nostate"

    @property
    def state_indexes(self) -> tuple[str, ...]:
        """Every per-state index and the state-less one: each task is in exactly one."""
        return (*(self.index_state(s) for s in STATE_PRECEDENCE), self.index_stateless)

    def index_name(self, name: str) -> str:
        return f"{self._partition_base}idx:name:{name}"

    def index_queue(self, queue: str) -> str:
        return f"{self._partition_base}idx:queue:{queue}"

    def index_worker(self, hostname: str) -> str:
        return f"{self._partition_base}idx:worker:{hostname}"

    def index_children(self, task_id: str) -> str:
        """Children of ``task_id`` that live in this partition (a child is indexed in its own
        partition: readers ask every partition, see read.py)."""
        return f"{self._partition_base}idx:children:{task_id}"

    def index_root(self, task_id: str) -> str:
        return f"{self._partition_base}idx:root:{task_id}"

    @property
    def index_segment_prefix(self) -> str:
        """Start of this partition's index segment keys (segments.lua appends
        ``<id>:<index key>``)."""
        return f"{self._partition_base}seg:"

    @property
    def index_summaries(self) -> str:
        """Per index of this partition: its entries and its newest segment (segments.lua)."""
        return f"{self._partition_base}seg:summary"

    def index_migration(self, index: str) -> str:
        """Where a plain index written before segmentation waits while it is converted
        (segments.migrate_plain_indexes); in the index's own slot."""
        return f"{self.prefix}migrating:{index}"

    def is_segmented(self, index: str) -> bool:
        """Whether ``index`` (of any partition) is a segmented one (state, name, queue,
        worker): read through segments.py, not with plain sorted-set commands."""
        rest = index[len(self._base(self.partition_of_index(index))):]
        return rest == "idx:nostate" or rest.startswith(_SEGMENTED_STARTS)

    def partition_of_index(self, key: str) -> int:
        """The partition a per-partition key (an index, a segment) belongs to, read off its
        tag (0 when untagged)."""
        if not self.tagged:
            return 0
        start = len(self.prefix) + 2  # past "<prefix>{p"
        return int(key[start:key.index("}", start)])

    def index_fingerprint(self, fingerprint: str) -> str:
        return f"{self._partition_base}idx:fp:{fingerprint}"

    @property
    def failure_groups(self) -> str:
        return f"{self._partition_base}fail:groups"

    def failure_group(self, fingerprint: str) -> str:
        return f"{self._partition_base}fail:g:{fingerprint}"

    def failure_exception(self, exception_type: str) -> str:
        return f"{self._partition_base}fail:exc:{exception_type}"

    @property
    def counters_total(self) -> str:
        return f"{self._partition_base}cnt:total"

    def counters(self, granularity: str, bucket: int) -> str:
        """Counter hash for ``granularity`` (minute/hour/day) and a bucket start timestamp."""
        return f"{self.counters_template(granularity)}{bucket}"

    def counters_template(self, granularity: str) -> str:
        """``counters`` without its bucket: the script appends the bucket start."""
        return f"{self._partition_base}cnt:{_BUCKET_CODES[granularity]}:"

    # -- global -----------------------------------------------------------------------------

    @property
    def global_events(self) -> str:
        """The stream of events of no task: worker events and task-less audit events."""
        return f"{self._global_base}events"

    @property
    def workers(self) -> str:
        return f"{self._global_base}workers"

    def worker(self, hostname: str) -> str:
        return f"{self._global_base}worker:{hostname}"

    def worker_dedup(self, event_id: str) -> str:
        return f"{self._global_base}wdd:{event_id}"

    @property
    def queues(self) -> str:
        return f"{self._global_base}queues"

    @property
    def queue_consumers(self) -> str:
        return f"{self._global_base}queues:consumers"

    @property
    def queue_workers(self) -> str:
        return f"{self._global_base}queues:workers"

    @property
    def queue_processes(self) -> str:
        return f"{self._global_base}queues:processes"

    @property
    def queues_updated(self) -> str:
        return f"{self._global_base}queues:updated"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def workflow(self, root_id: str) -> str:
        return f"{self.prefix}workflow:{root_id}"

    def enqueued(self, task_id: str) -> str:
        return f"{self.prefix}enq:{task_id}"

    def ui_session(self, session_hash: str) -> str:
        return f"{self.prefix}ui:session:{session_hash}"

    def ui_login(self, code_hash: str) -> str:
        return f"{self.prefix}ui:login:{code_hash}"

    def collector(self, collector_id: str) -> str:
        return f"{self.prefix}collector:{collector_id}"

    @property
    def _lease_base(self) -> str:
        return f"{self.prefix}lease:"

    def lease(self, partition: int) -> str:
        """Which collector applies ``partition``'s events (event_collector/leases.py)."""
        return f"{self._lease_base}{partition}"

    @property
    def lease_members(self) -> str:
        """Collectors taking part in the leases, scored by their last lease round."""
        return f"{self._lease_base}members"

    @property
    def beat_prefix(self) -> str:
        """``redbeat_key_prefix`` for beat and the schedules API (see the docstring). Redbeat's
        scripts touch several of its keys: on a cluster they need one hash tag, the prefix's
        own or ``{<prefix>}`` (``redbeat:{tp}:`` either way for the default)."""
        if self.cluster and not has_hash_tag(self.prefix):
            return f"redbeat:{{{self.prefix.removesuffix(':')}}}:"
        return f"redbeat:{self.prefix}"

    @property
    def beat_seeded(self) -> str:
        """Static schedule entries already written once (redbeat's ``<key_prefix>:seeded``)."""
        return f"{self.beat_prefix}:seeded"

    # -- patterns and script arguments ------------------------------------------------------

    @property
    def task_limits(self) -> str:
        return f"fleet:{self.prefix}limits"

    @property
    def paused_queues(self) -> str:
        return f"fleet:{self.prefix}paused"

    @property
    def all_pattern(self) -> str:
        """Glob matching every key of this prefix (used by ``rebuild`` and tests)."""
        return f"{self.prefix}*"

    @property
    def index_pattern(self) -> str:
        """Glob matching every index key of this partition (the retention sweep's SCAN)."""
        return f"{self._partition_base}idx:*"

    @property
    def per_task_index_prefixes(self) -> tuple[str, str]:
        """Start of every ``idx:children:`` and ``idx:root:`` key (one pair per parent task)."""
        return self.index_children(""), self.index_root("")

    @property
    def kept_on_rebuild(self) -> tuple[str, ...]:
        """Key starts ``rebuild`` keeps: the streams themselves, what the broker poller and
        running collectors own (heartbeats, leases), and the chord shapes the API records (no
        event carries them)."""
        return (
            *self.streams, self.queues, self.collector(""), self._lease_base,
            self.workflow(""),
        )  # fmt: skip

    def tagged_name(self, untagged: str, partition: int | None) -> str:
        """The name a key of this prefix's one-partition layout has in this layout: in
        ``partition``, or among the global (``{g}``) keys when None (repartition.py). Every
        tagged name is its untagged name with the tag after the prefix."""
        base = self._global_base if partition is None else self._base(partition)
        return base + untagged.removeprefix(self.prefix)

    def store_script_templates(self) -> list[str]:
        """Key names and templates ``store.lua`` is handed (its ARGV tail, in its order): a
        template is the key with its variable part (task id, state, name, bucket, host, event
        id) left off. Per-task ones are this partition's; worker ones are global."""
        return [
            self._base(self.partition) + "task:", self.index_state(""), self.index_name(""),
            self.index_queue(""), self.index_worker(""), self.index_children(""),
            self.index_root(""), self.counters_template("minute"),
            self.counters_template("hour"), self.counters_template("day"), self.worker(""),
            self.worker_dedup(""), self.counters_total, self.index_stateless, self.workers,
            self.index_fingerprint(""), self.failure_group(""), self.failure_exception(""),
            self.failure_groups, self.index_segment_prefix, self.index_summaries,
        ]  # fmt: skip


def bucket_start(timestamp: float, granularity: str) -> int:
    size = BUCKET_SECONDS[granularity]
    return int(timestamp // size) * size


def counter_field(name: str, kind: str) -> str:
    return f"{name}{COUNTER_FIELD_SEPARATOR}{kind}"
