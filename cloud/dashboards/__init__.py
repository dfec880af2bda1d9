"""The manager's drill-down and money pages: time series of the station, its lines and meters, comparisons."""
