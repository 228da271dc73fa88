/*
 * The Kubernetes termination message: a short summary that
 * `kubectl describe pod` shows. At most 4096 bytes, redacted, control
 * characters escaped (the final newline kept); a path that
 * is absent or read-only is not an error (outside Kubernetes it usually is).
 */
#ifndef MI_TERMINATION_H
#define MI_TERMINATION_H

#define TERMINATION_MAX 4096
#define TERMINATION_DEFAULT_PATH "/dev/termination-log"

void termination_write(const char *path, const char *text);

#endif
