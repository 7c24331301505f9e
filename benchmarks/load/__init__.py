"""How the benchmarks load a server: wrk's closed loop over a file of requests (`wrk`, with
`requests.lua`), and an open loop at a fixed rate (`loadgen`)."""
