-- 16-deep HTTP/1.1 pipelining: every write carries 16 GET requests.
-- wrk counts each response, so requests/s is responses/s.
-- Usage: wrk -s pipeline.lua URL [-- DEPTH]
local depth = 16

init = function(args)
   if args[1] then depth = tonumber(args[1]) end
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil)
   end
   req = table.concat(r)
end

request = function()
   return req
end
