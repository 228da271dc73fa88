/*
 * Crash injection for the reliability tests. Only builds with -DMI_FAULTS
 * (make faults: bin/faults/migrate-init) have it; in every other build
 * FAULT() is nothing at all.
 *
 * MI_FAULT=NAME or NAME@N kills the process with SIGKILL the first (or Nth)
 * time it passes the point NAME.
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
