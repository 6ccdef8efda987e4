"""`stackha drill`: faults run against a running stack while clients keep using both VIPs.

Pure parts (probe series to outage figures, results to table/JSON, timeline to PNG) are kept
apart from the parts that touch Docker and ZooKeeper:

- ``probes``      client probes against the VIPs, one every 10 ms, recording (t, ok)
- ``analysis``    pure: outages, failed/sent, time until green, what status showed
- ``green``       pure: the `stackha status --json` document and what keeps it from green
- ``statuswatch`` polls ZooKeeper for that document during a scenario
- ``lab``         the compose lab's containers and addresses (Docker SDK, docker exec)
- ``scenario``    what every scenario shares: options, context, inject/hold/heal/assess
- ``faults``      machines and network: kills, stops, ZooKeeper away, a node cut off
- ``badconfig``   bad configuration pushed: refused, rolled back, ever served?
- ``scenarios``   all of them, in order
- ``runner``      one scenario from green to green, probes running throughout
- ``result``      the values a scenario produces (figures, findings, timeline)
- ``report``      pure: the terminal table and the JSON document
- ``timeline``    pure: one PNG per scenario (matplotlib, Agg)
- ``command``     the `stackha drill` subcommand
"""
