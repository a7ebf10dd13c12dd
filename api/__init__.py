"""The system's HTTP side: today the receiver of provider server messages (Vapi's)."""
