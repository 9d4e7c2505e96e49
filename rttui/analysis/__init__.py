"""Analysis over plain records (dicts): aggregation over seeds, statistics, error analysis, exports."""
