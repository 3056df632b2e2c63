-- wrk script for bench/boot/run.sh: GET /boot for random MACs, half from a
-- fleet of KNOWN machines already in the store (booted again), half new.
-- Each thread has its own seed, so runs are repeatable.
local known = tonumber(os.getenv("KNOWN") or "10000")
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(1000 + id)
  n = 0
end
request = function()
  n = n + 1
  local i
  if n % 2 == 0 then
    i = math.random(0, known - 1)                 -- a known machine
  else
    i = known + id * 100000000 + n                -- a new one (threads never collide)
  end
  local b = function(shift) return math.floor(i / 2 ^ shift) % 256 end  -- LuaJIT: no >> or &
  local mac = string.format("52:54:%02x:%02x:%02x:%02x", b(24), b(16), b(8), b(0))
  return wrk.format("GET", "/boot?mac=" .. mac .. "&platform=pcbios&buildarch=x86_64&manufacturer=QEMU")
end
