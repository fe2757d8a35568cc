/*
 * The native job switch: one C-level call that switches into an OpenSSL job (or
 * makes any other call that may run Python code for a job) with the job's
 * thread state bound, and hands the GIL over for the job when it comes back
 * holding it. x86-64, System V calling convention, position independent, no
 * data of its own: everything comes through the two structures below.
 *
 * This file is the source of the machine code in _switch_code.py (the bytes are
 * what `as` makes of it; tests/test_native_switch.py assembles it again and
 * compares). Nothing compiles it at install or run time.
 *
 * It holds two functions: the switch (below) and, first, the trampoline that
 * OpenSSL 3.0/3.1 runs as a job's function to leave its 32 KiB fibre for our own
 * guarded stack (see _NestedUnit in _runner.py):
 *
 *     int pyossl_trampoline(void *const args[3]);
 *
 * args is OpenSSL's copy of the job's argument blob: {back, start, swapcontext};
 * it returns swapcontext(back, start): 0 once the job's code on our stack has
 * ended and `start`'s uc_link has come back to `back` (-1 if the switch failed).
 *
 *     int pyossl_switch(struct switch_block *b);
 *
 * struct switch_block {               struct switch_api {
 *   0  int (*fn)(a0..a5);               0  PyEval_RestoreThread
 *   8  intptr_t a[6];    (8..48)        8  PyEval_SaveThread
 *  56  PyThreadState *bind_ts;         16  attached(): the thread state that holds
 *  64  PyThreadState *held;                 the GIL on this thread, or NULL
 *  72  intptr_t flags;  (bit 0: bind   24  pthread_setspecific, or NULL (3.12+)
 *                        at a start)   32  pthread_getspecific
 *  80  struct switch_api *api;         40  the GIL-state pthread key (3.9-3.11)
 *  88  intptr_t result;                48  ASYNC_get_current_job, or NULL
 *  96  ASYNC_JOB *job;               }
 * 104  int ret;
 * };
 *
 * Steps, called with the GIL released (a ctypes CDLL call):
 *  1. a C job runs on this thread (ASYNC_get_current_job() != NULL): return -1,
 *     nothing done (starting or resuming a job from inside one);
 *  2. 3.9-3.11: the GIL-state key := bind_ts (the old value is kept), so that a
 *     callback into Python inside the job lands on the job's thread state;
 *  3. flags bit 0 and job == NULL (3.12+, a new job's start): PyEval_RestoreThread
 *     (bind_ts); PyEval_SaveThread(), which binds the GIL state to bind_ts;
 *  4. held != NULL (the job paused inside C code that holds the GIL, and step 6
 *     released the GIL on its behalf): PyEval_RestoreThread(held), held := NULL;
 *  5. result := fn(a0..a5)   (ASYNC_start_job: runs the job until it pauses or ends);
 *  6. the job came back holding the GIL (3.12+: attached() != NULL; 3.9-3.11:
 *     attached() == bind_ts, as attached() is interpreter-wide there):
 *     held := PyEval_SaveThread(), so that the caller can take the GIL back;
 *  7. 3.9-3.11: the GIL-state key := its old value;
 *  8. return result.
 */
        .text
        .globl  pyossl_trampoline
        .type   pyossl_trampoline, @function
pyossl_trampoline:
        subq    $8, %rsp                /* 16-byte alignment for the call */
        movq    16(%rdi), %rax          /* swapcontext */
        movq    8(%rdi), %rsi           /* start: the job's code on our stack */
        movq    (%rdi), %rdi            /* back: where this fibre is saved */
        call    *%rax
        addq    $8, %rsp
        ret
        .size   pyossl_trampoline, .-pyossl_trampoline

        .p2align 4
        .globl  pyossl_switch
        .type   pyossl_switch, @function
pyossl_switch:
        pushq   %rbx                    /* b */
        pushq   %r12                    /* b->api */
        pushq   %r13                    /* the GIL-state key's old value */
        pushq   %r14                    /* fn's result */
        pushq   %r15                    /* (keeps the stack 16-byte aligned) */
        movq    %rdi, %rbx
        movq    80(%rbx), %r12
        /* 1. refuse inside a job */
        movq    48(%r12), %rax
        testq   %rax, %rax
        jz      1f
        call    *%rax
        testq   %rax, %rax
        jnz     9f
1:      /* 2. 3.9-3.11: bind the GIL-state key */
        cmpq    $0, 24(%r12)
        je      2f
        movl    40(%r12), %edi
        call    *32(%r12)
        movq    %rax, %r13
        movl    40(%r12), %edi
        movq    56(%rbx), %rsi
        call    *24(%r12)
2:      /* 3. 3.12+: bind the GIL state for a new job */
        testq   $1, 72(%rbx)
        jz      3f
        cmpq    $0, 96(%rbx)
        jne     3f
        movq    56(%rbx), %rdi
        call    *0(%r12)
        call    *8(%r12)
3:      /* 4. retake the GIL for a job that paused holding it */
        movq    64(%rbx), %rdi
        testq   %rdi, %rdi
        jz      4f
        movq    $0, 64(%rbx)
        call    *0(%r12)
4:      /* 5. the call */
        movq    8(%rbx), %rdi
        movq    16(%rbx), %rsi
        movq    24(%rbx), %rdx
        movq    32(%rbx), %rcx
        movq    40(%rbx), %r8
        movq    48(%rbx), %r9
        call    *0(%rbx)
        movslq  %eax, %r14
        movq    %r14, 88(%rbx)
        /* 6. came back holding the GIL: release it on the job's behalf */
        call    *16(%r12)
        testq   %rax, %rax
        jz      7f
        cmpq    $0, 24(%r12)
        je      6f
        cmpq    56(%rbx), %rax
        jne     7f
6:      call    *8(%r12)
        movq    %rax, 64(%rbx)
7:      /* 7. 3.9-3.11: the GIL-state key back */
        cmpq    $0, 24(%r12)
        je      8f
        movl    40(%r12), %edi
        movq    %r13, %rsi
        call    *24(%r12)
8:      movl    %r14d, %eax
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        ret
9:      /* 1. (refused) */
        movl    $-1, %r14d
        jmp     8b
        .size   pyossl_switch, .-pyossl_switch
        .section .note.GNU-stack,"",@progbits
