"""A bridge's aggregate in Redis, changed only together with the acknowledgement of its entries.

One Lua script (atomic in Redis) does, for a batch of stream entries: refuse if any record id
was already applied by any bridge of the group (the caller drops those and retries), else
mark the ids seen, add the batch's increments to this consumer's hash, and ``XACK`` the
entries. So a bridge killed before the script ran leaves its entries pending (re-read or
reclaimed, then applied once); killed after, they are acknowledged and counted — never both,
never neither.

Keys (all under ``finishline:{run_id}:bridge:``): ``state:{consumer}`` (hash: the aggregate a
consumer exposes), ``seen:{window}`` (set of applied record ids, one per ``dedup_window``
seconds of the records' wall time, expiring after two windows).
"""

from __future__ import annotations

import redis

from loadgen.stream.keys import read_hash, stream_keys

GROUP = "bridge"

_APPLY = """
local group = ARGV[1]
local seen_ttl = tonumber(ARGV[2])
local state_ttl = tonumber(ARGV[3])
local i = 4
local nack = tonumber(ARGV[i]); i = i + 1
local ack_at = i
i = i + nack
local nrec = tonumber(ARGV[i]); i = i + 1
local rec_at = i
local dups = {}
for j = 1, nrec do
  if redis.call('SISMEMBER', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1]) == 1 then
    dups[#dups + 1] = ARGV[i + 1]
  end
  i = i + 2
end
if #dups > 0 then return dups end
i = rec_at
for j = 1, nrec do
  redis.call('SADD', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1])
  i = i + 2
end
for j = 3, #KEYS do redis.call('EXPIRE', KEYS[j], seen_ttl) end
local nf = tonumber(ARGV[i]); i = i + 1
for j = 1, nf do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if nf > 0 then redis.call('EXPIRE', KEYS[1], state_ttl) end
local j = ack_at
while j < ack_at + nack do
  local last = math.min(j + 499, ack_at + nack - 1)
  redis.call('XACK', KEYS[2], group, unpack(ARGV, j, last))
  j = last + 1
end
return dups
"""


class BridgeStore:
    """The Redis side of one consumer: its aggregate and the group-wide seen-id sets."""

    def __init__(
        self,
        client: redis.Redis,
        run_id: str,
        stream: str,
        consumer: str,
        group: str = GROUP,
        dedup_window: float = 600.0,
        state_ttl: int = 7 * 86400,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        prefix = stream_keys(run_id).bridge
        self.state_key = f"{prefix}:state:{consumer}"
        self.seen_prefix = f"{prefix}:seen:"
        self.dedup_window = dedup_window
        self.state_ttl = state_ttl
        self._script = client.register_script(_APPLY)

    def window(self, wall_time: float) -> int:
        """The seen-set a record's id belongs to: fixed by the record, so duplicates meet."""
        return int(wall_time // self.dedup_window)

    def load(self) -> dict[str, float]:
        """The aggregate this consumer has applied so far (empty for a new consumer)."""
        return {k: float(v) for k, v in read_hash(self.client, self.state_key).items()}

    def apply(
        self,
        entry_ids: list[str],
        records: list[tuple[str, float]],
        increments: dict[str, float],
    ) -> list[str]:
        """Atomically count ``records`` (id, wall_time) with ``increments`` and ack ``entry_ids``.

        Returns the ids already seen; when it is not empty nothing was written and the caller
        must retry without them.
        """
        windows = sorted({self.window(wt) for _, wt in records})
        index = {w: i + 1 for i, w in enumerate(windows)}
        keys = [self.state_key, self.stream, *(f"{self.seen_prefix}{w}" for w in windows)]
        args: list[str | int | float] = [
            self.group,
            int(2 * self.dedup_window),
            self.state_ttl,
            len(entry_ids),
            *entry_ids,
            len(records),
        ]
        for rid, wt in records:
            args += [index[self.window(wt)], rid]
        args.append(len(increments))
        for field, value in increments.items():
            args += [field, repr(value)]
        dups = self._script(keys=keys, args=args)
        return [d.decode() if isinstance(d, bytes) else d for d in dups]


def delete_bridge_keys(client: redis.Redis, run_id: str, limit: int = 100_000) -> int:
    """Remove every ``finishline:{run_id}:bridge:*`` key (a run's teardown); returns how many."""
    keys = []
    for i, key in enumerate(client.scan_iter(match=f"{stream_keys(run_id).bridge}:*", count=1000)):
        if i >= limit:
            break
        keys.append(key)
    for j in range(0, len(keys), 1000):
        client.delete(*keys[j : j + 1000])
    return len(keys)
