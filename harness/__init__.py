"""What tests, faults, benchmarks and the deploy check need to run processes and peers on loopback.

Free ports and waiting with a deadline (`waiting`), starting and stopping processes in
process groups of their own (`processes`), and a recording HTTP peer (`peer`). It is
support code only: no module of the service imports it.
"""
