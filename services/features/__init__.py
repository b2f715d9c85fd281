"""features: a faust app folding events into every declared feature view per entity → the online views (Redis) +
features.log, reconfigured at run time by the definitions revision in force."""
