"""Ingest and playback: nginx-rtmp's callbacks, stream keys, signed HLS links, ffmpeg media."""
