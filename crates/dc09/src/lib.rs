//! SIA DC-09 (ANSI/SIA DC-09) codec without I/O: bytes in, values out, like `vaka_scaip`.
