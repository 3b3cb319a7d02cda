"""The single payment document: its data (model), its payment QR (qr), its PDF (pdf), and its
assembly from the stored bill (assemble). Shared by the API (one document on demand) and the
back office (documents in bulk, exports)."""
