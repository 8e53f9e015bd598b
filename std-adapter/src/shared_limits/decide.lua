-- One tools/call decision, atomically, on the store's clock: the quota, then every GCRA bucket;
-- all are written only when all pass (a refusal writes nothing but units added back).
--
-- KEYS[1]     the quota hash {w = window index, u = units used in it}
-- KEYS[2..]   one GCRA bucket each, "TAT_US FRACTION" (TAT = TAT_US + FRACTION / scale µs)
-- ARGV[1]     now in µs, or "" for the server's clock (TIME). Only tests pass a time.
-- ARGV[2..3]  quota limit (0: no quota), quota window in seconds
-- ARGV[4..5]  quota units spent while the store was unreachable, and the window they count in
-- ARGV[6]     tokens asked of every bucket (n, 1 ≤ n ≤ each burst: checked before the call)
-- then 3 per bucket: emission interval (units per token), scale (units per µs), burst
--
-- Returns {verdict, retry_us, quota_used, quota_resets_us, added_back, d_1, d_2, ...}
--   verdict 1 admitted, 2 rate limited, 3 quota exhausted; d_i = bucket i's TAT − now after the
--   decision, in its units (≥ 0). Every number stays an integer below 2^53: exact in a double.

local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  while r < 0 do q = q - 1; r = r + b end
  while r >= b do q = q + 1; r = r - b end
  return q, r
end

-- Expiries run on the server's clock: with a test's clock, keys live an hour longer, so that
-- the server does not forget a state the test's clock still needs.
local now, linger = nil, 0
if ARGV[1] ~= '' then
  now, linger = tonumber(ARGV[1]), 3600000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local back, back_w = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[6])

local verdict, retry, used, resets, added, w = 1, 0, 0, 0, 0, 0
if limit > 0 then
  local wus = window * 1000000
  w = divmod(now, wus)
  resets = (w + 1) * wus - now
  local q = redis.call('HMGET', KEYS[1], 'w', 'u')
  if tonumber(q[1]) == w then used = tonumber(q[2]) or 0 end
  if back > 0 and back_w == w then
    used = used + back
    added = back
  end
  if used + n > limit then
    verdict, retry = 3, resets
  end
end

local k = (#ARGV - 6) / 3
local d, new = {}, {}
for i = 1, k do
  local I, S, B = tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local base = 0
  local st = redis.call('GET', KEYS[1 + i])
  if st then
    local tus, fr = string.match(st, '^(%d+) (%d+)$')
    tus, fr = tonumber(tus), tonumber(fr)
    if tus and fr and tus >= now then base = (tus - now) * S + fr end
  end
  local nt = base + n * I
  d[i], new[i] = base, nt
  if nt > I * B then
    if verdict == 1 then verdict = 2 end
    if verdict == 2 then
      local q, r = divmod(nt - I * B, S)
      if r > 0 then q = q + 1 end
      if q > retry then retry = q end
    end
  end
end

local function write_quota(u)
  redis.call('HSET', KEYS[1], 'w', string.format('%d', w), 'u', string.format('%d', u))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.floor(resets / 1000) + 3600001))
end

if verdict == 1 then
  for i = 1, k do
    local S = tonumber(ARGV[5 + 3 * i])
    local q, r = divmod(new[i], S)
    local ms = divmod(new[i], S * 1000)
    redis.call('SET', KEYS[1 + i], string.format('%d %d', now + q, r), 'PX', string.format('%d', ms + 1 + linger))
    d[i] = new[i]
  end
  if limit > 0 then
    used = used + n
    write_quota(used)
  end
elseif added > 0 then
  write_quota(used)
end

local out = {verdict, retry, used, resets, added}
for i = 1, k do out[5 + i] = d[i] end
return out
