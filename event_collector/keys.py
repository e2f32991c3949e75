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
  P idx:state:<STATE>    ZSET     tasks currently in STATE (moved on every state change)
  P idx:nostate          ZSET     tasks with no state yet (only a task-progress event seen)
                                  Every task is in exactly one of these (``Keys.state_indexes``):
                                  together they are the list of all tasks, so there is no
                                  ``idx:all`` (one ZADD and ~140 B per task less); readers merge
                                  them by score.
  P idx:name:<name>      ZSET
  P idx:queue:<queue>    ZSET
  P idx:worker:<host>    ZSET
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

Scaling out (DESIGN.md): every key is built here, so partition tags ``{p<N>}`` can be added to
``Keys`` alone.
"""

from __future__ import annotations

from typing import Final

import msgspec

from event_collector.events import STATE_PRECEDENCE

TIMELINE_FIELD: Final = "_tl"

COUNTER_FIELD_SEPARATOR: Final = "|"
# Hourly failure counts kept per group (``fail:g:<fp>`` fields h0..h23): one day.
FAILURE_HOUR_SLOTS: Final = 24

# TASKPULSE_KEY_PREFIX's default, for every role that reads the store.
DEFAULT_KEY_PREFIX: Final = "tp:"
BUCKET_SECONDS: Final[dict[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
_BUCKET_CODES: Final[dict[str, str]] = {"minute": "m", "hour": "h", "day": "d"}


class Keys(msgspec.Struct, frozen=True):
    """Key builder for one prefix. Cheap to create; create once per process and pass it down."""

    prefix: str = DEFAULT_KEY_PREFIX

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def index_state(self, state: str) -> str:
        return f"{self.prefix}idx:state:{state}"

    @property
    def index_stateless(self) -> str:
        return f"{self.prefix}idx:nostate"

    @property
    def state_indexes(self) -> tuple[str, ...]:
        """Every per-state index and the state-less one: each task is in exactly one."""
        return (*(self.index_state(s) for s in STATE_PRECEDENCE), self.index_stateless)

    def index_name(self, name: str) -> str:
        return f"{self.prefix}idx:name:{name}"

    def index_queue(self, queue: str) -> str:
        return f"{self.prefix}idx:queue:{queue}"

    def index_worker(self, hostname: str) -> str:
        return f"{self.prefix}idx:worker:{hostname}"

    def index_children(self, task_id: str) -> str:
        return f"{self.prefix}idx:children:{task_id}"

    def index_root(self, task_id: str) -> str:
        return f"{self.prefix}idx:root:{task_id}"

    def index_fingerprint(self, fingerprint: str) -> str:
        return f"{self.prefix}idx:fp:{fingerprint}"

    @property
    def failure_groups(self) -> str:
        return f"{self.prefix}fail:groups"

    def failure_group(self, fingerprint: str) -> str:
        return f"{self.prefix}fail:g:{fingerprint}"

    def failure_exception(self, exception_type: str) -> str:
        return f"{self.prefix}fail:exc:{exception_type}"

    @property
    def counters_total(self) -> str:
        return f"{self.prefix}cnt:total"

    def counters(self, granularity: str, bucket: int) -> str:
        """Counter hash for ``granularity`` (minute/hour/day) and a bucket start timestamp."""
        return f"{self.counters_template(granularity)}{bucket}"

    def counters_template(self, granularity: str) -> str:
        """``counters`` without its bucket: the script appends the bucket start."""
        return f"{self.prefix}cnt:{_BUCKET_CODES[granularity]}:"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}worker:{hostname}"

    def worker_dedup(self, event_id: str) -> str:
        return f"{self.prefix}wdd:{event_id}"

    @property
    def queues(self) -> str:
        return f"{self.prefix}queues"

    @property
    def queue_consumers(self) -> str:
        return f"{self.prefix}queues:consumers"

    @property
    def queue_workers(self) -> str:
        return f"{self.prefix}queues:workers"

    @property
    def queue_processes(self) -> str:
        return f"{self.prefix}queues:processes"

    @property
    def queues_updated(self) -> str:
        return f"{self.prefix}queues:updated"

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
    def beat_prefix(self) -> str:
        """``redbeat_key_prefix`` for beat and the schedules API (see the docstring)."""
        return f"redbeat:{self.prefix}"

    @property
    def beat_seeded(self) -> str:
        """Static schedule entries already written once (redbeat's ``<key_prefix>:seeded``)."""
        return f"{self.beat_prefix}:seeded"

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
        """Glob matching every index key (the retention sweep's discovery SCAN)."""
        return f"{self.prefix}idx:*"

    @property
    def per_task_index_prefixes(self) -> tuple[str, str]:
        """Start of every ``idx:children:`` and ``idx:root:`` key (one pair per parent task)."""
        return self.index_children(""), self.index_root("")

    @property
    def kept_on_rebuild(self) -> tuple[str, ...]:
        """Key starts ``rebuild`` keeps: the stream itself, what the broker poller and running
        collectors own, and the chord shapes the API records (no event carries them)."""
        return (self.events, self.queues, self.collector(""), self.workflow(""))

    def store_script_keys(self) -> list[str]:
        """KEYS of ``store.lua``, in its order: the stream, then the fixed projection keys."""
        return [self.events, self.counters_total, self.index_stateless, self.workers,
                self.failure_groups]

    def store_script_templates(self) -> list[str]:
        """Key templates ``store.lua`` completes (its ARGV tail, in its order): each is the key
        with its variable part (task id, state, name, bucket, host, event id) left off."""
        return [
            self.task(""), self.index_state(""), self.index_name(""), self.index_queue(""),
            self.index_worker(""), self.index_children(""), self.index_root(""),
            self.counters_template("minute"), self.counters_template("hour"),
            self.counters_template("day"), self.worker(""), self.worker_dedup(""),
            self.index_fingerprint(""), self.failure_group(""), self.failure_exception(""),
        ]  # fmt: skip


def bucket_start(timestamp: float, granularity: str) -> int:
    size = BUCKET_SECONDS[granularity]
    return int(timestamp // size) * size


def counter_field(name: str, kind: str) -> str:
    return f"{name}{COUNTER_FIELD_SEPARATOR}{kind}"
