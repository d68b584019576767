-- ARGV: prefix, user, ticket json, member header (37 bytes), joined ms, now ms,
-- fingerprint, n blocked, blocked users..., interests...
local uid, json, header = ARGV[2], ARGV[3], ARGV[4]
local joined, now, fp, nb = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local tkey = P .. ':t:' .. uid
local old = redis.call('HMGET', tkey, 'm', 'fp', 'j0', 'st')
if old[1] then
  if old[4] == 'w' then unindex(old[1]) end
  if old[2] == fp then joined = tonumber(old[3]) end
end
redis.call('ZREM', P .. ':claimed', uid)
redis.call('DEL', P .. ':bl:' .. uid, P .. ':m:' .. uid)
-- In slices: unpack() of thousands of values overflows Lua's stack.
for i = 9, 8 + nb, 1000 do
  redis.call('SADD', P .. ':bl:' .. uid, unpack(ARGV, i, math.min(i + 999, 8 + nb)))
end
local ids = {}
for i = 9 + nb, #ARGV do
  local id = redis.call('HGET', P .. ':iid', ARGV[i])
  if not id then
    id = redis.call('INCR', P .. ':iidn')
    redis.call('HSET', P .. ':iid', ARGV[i], id)
  end
  id = tonumber(id)
  ids[#ids + 1] = string.char(math.floor(id / 65536) % 256, math.floor(id / 256) % 256, id % 256)
end
local m = header .. string.char(#ids) .. table.concat(ids)
redis.call('HSET', tkey, 'm', m, 'j', json, 'fp', fp, 'j0', joined, 'st', 'w', 'cid', '')
index(m, joined)
redis.call('ZADD', P .. ':due', now, uid)
return joined
