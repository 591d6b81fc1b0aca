#!/usr/bin/env escript
%% -*- erlang -*-
%% The Erlang baselines of lunatic-mp bench (benchmarks/baselines.py runs this): the scenarios of
%% lunatic_mp, in the VM whose process model lunatic copies. Prints "name value" lines.
%%
%%   escript bench.escript spawn N         processes spawned and run to exit per second
%%   escript bench.escript pingpong N      round-trip times of N ping-pongs (p50, p99)
%%   escript bench.escript ring N HOPS     a token passed HOPS times around N processes
%%   escript bench.escript idle N          memory per process waiting in receive
-mode(compile).

main(["spawn", N]) -> spawn_bench(list_to_integer(N));
main(["pingpong", N]) -> pingpong(list_to_integer(N));
main(["ring", N, Hops]) -> ring(list_to_integer(N), list_to_integer(Hops));
main(["idle", N]) -> idle(list_to_integer(N));
main(_) ->
    io:format(standard_error, "usage: bench.escript spawn N | pingpong N | ring N HOPS | idle N~n", []),
    halt(2).

seconds(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1.0e9.

%% One spawner per scheduler; each spawns its share in batches of 256, every child monitored, and
%% waits for the batch's DOWN messages (as lunatic_mp's spawner waits for a LinkDied).
spawn_bench(N) ->
    Schedulers = erlang:system_info(schedulers_online),
    Each = max(1, N div Schedulers),
    Main = self(),
    T0 = erlang:monotonic_time(),
    Spawners = [spawn(fun() -> spawn_batches(Each), Main ! {done, self()} end)
                || _ <- lists:seq(1, Schedulers)],
    [receive {done, P} -> ok end || P <- Spawners],
    io:format("processes_per_s ~f~n", [Each * Schedulers / seconds(T0)]).

spawn_batches(0) -> ok;
spawn_batches(Left) ->
    Batch = min(Left, 256),
    [spawn_monitor(fun() -> ok end) || _ <- lists:seq(1, Batch)],
    wait_down(Batch),
    spawn_batches(Left - Batch).

wait_down(0) -> ok;
wait_down(K) -> receive {'DOWN', _, process, _, _} -> wait_down(K - 1) end.

pingpong(N) ->
    Pong = spawn(fun pong/0),
    Sorted = lists:sort(ping(Pong, N, [])),
    Pong ! stop,
    P50 = lists:nth(N div 2 + 1, Sorted),
    P99 = lists:nth(min(N, N * 99 div 100 + 1), Sorted),
    io:format("round_trip_p50_us ~f~nround_trip_p99_us ~f~n", [P50 / 1000, P99 / 1000]).

ping(_, 0, Times) -> Times;
ping(Pong, K, Times) ->
    T0 = erlang:monotonic_time(nanosecond),
    Pong ! {ping, self()},
    receive pong -> ok end,
    ping(Pong, K - 1, [erlang:monotonic_time(nanosecond) - T0 | Times]).

pong() ->
    receive
        {ping, From} -> From ! pong, pong();
        stop -> ok
    end.

%% Each node passes the token on with one hop fewer; the node that makes the last hop tells main.
ring(N, Hops) ->
    Main = self(),
    Nodes = [spawn(fun() -> receive {next, Next} -> node(Main, Next) end end) || _ <- lists:seq(1, N)],
    [Node ! {next, Next} || {Node, Next} <- lists:zip(Nodes, tl(Nodes) ++ [hd(Nodes)])],
    T0 = erlang:monotonic_time(),
    hd(Nodes) ! {token, Hops},
    receive done -> ok end,
    Seconds = seconds(T0),
    [Node ! stop || Node <- Nodes],
    io:format("hops_per_s ~f~n", [Hops / Seconds]).

node(Main, Next) ->
    receive
        {token, 1} -> Main ! done, node(Main, Next);
        {token, K} -> Next ! {token, K - 1}, node(Main, Next);
        stop -> ok
    end.

idle(N) ->
    erlang:garbage_collect(),
    Before = erlang:memory(total),
    Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    After = erlang:memory(total),
    io:format("kib_per_process ~f~nprocess_limit_count ~w~n",
              [(After - Before) / N / 1024, erlang:system_info(process_limit)]),
    [Pid ! stop || Pid <- Pids].
