/*
 * Crash and pause injection for the reliability tests. Only builds with
 * -DMI_FAULTS (make faults: bin/faults/migrate-init) have it; in every other
 * build FAULT() is nothing at all.
 *
 * MI_FAULT=NAME or NAME@N kills the process with SIGKILL the first (or Nth)
 * time it passes the point NAME. MI_PAUSE=NAME or NAME@N stops it there with
 * SIGSTOP instead (every thread, as a frozen VM or a paused cgroup would),
 * so a test can let another runner take over and then SIGCONT it.
 *
 * Thread: the main thread only (the hit counters are not shared).
 */
#ifndef MI_FAULT_H
#define MI_FAULT_H

#ifdef MI_FAULTS
void fault_point(const char *name);
#define FAULT(name) fault_point(name)
#else
#define FAULT(name) ((void)0)
#endif

#endif
