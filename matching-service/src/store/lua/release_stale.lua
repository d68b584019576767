-- ARGV: prefix, claimed before ms, now ms. Returns how many tickets were put back.
local before, now = ARGV[2], tonumber(ARGV[3])
local us = redis.call('ZRANGEBYSCORE', P .. ':claimed', '-inf', '(' .. before)
for _, u in ipairs(us) do
  local tkey = P .. ':t:' .. u
  local h = redis.call('HMGET', tkey, 'st', 'm', 'j0')
  if h[1] == 'c' then
    redis.call('HSET', tkey, 'st', 'w', 'cid', '')
    index(h[2], tonumber(h[3]))
    redis.call('ZADD', P .. ':due', now, u)
  end
  redis.call('ZREM', P .. ':claimed', u)
end
return #us
