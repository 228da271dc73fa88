/* The smoke test's pod: a static binary in a FROM-scratch image. It says
 * hello and, given HOST PORT, reads one line from a listener there (the node
 * IP, where the tests' database will be) to show that pods reach it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	printf("hello from a FROM-scratch pod, uid %d\n", (int)getuid());
	fflush(stdout);
	if (argc < 3)
		return 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("connect");
		return 4;
	}
	char buf[128];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n <= 0) {
		fprintf(stderr, "no reply from %s:%s\n", argv[1], argv[2]);
		return 4;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("node %s:%s says: %s\n", argv[1], argv[2], buf);
	close(fd);
	return 0;
}
