"""Versioned tiles: NDS.Live tile IDs, tile encoding, change detection, the store, the service."""
