"""Bookings forecasts for every level of the sales hierarchy."""
