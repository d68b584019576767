-- ARGV: prefix, user. Returns 1 when a ticket was removed.
local uid = ARGV[2]
local tkey = P .. ':t:' .. uid
local h = redis.call('HMGET', tkey, 'm', 'st')
if not h[1] then return 0 end
if h[2] == 'w' then unindex(h[1]) end
redis.call('DEL', tkey, P .. ':bl:' .. uid)
redis.call('ZREM', P .. ':due', uid)
redis.call('ZREM', P .. ':claimed', uid)
return 1
