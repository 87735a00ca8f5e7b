/*
 * int80: one 32-bit system call (int 0x80: i386 getpid) from a 64-bit
 * process. Without a filter it returns the pid and the program exits 0;
 * under a sandbox filter, which holds only the native architecture, the
 * process is killed by SIGSYS.
 */
int main(void);

int
main(void)
{
#if defined(__x86_64__)
	long r;
	/* the 32-bit entry may clobber r8-r11 */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
	return r > 0 ? 0 : 1;
#else
	return 77; /* not x86_64: nothing to prove */
#endif
}
