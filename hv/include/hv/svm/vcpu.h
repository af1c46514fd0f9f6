/* The SVM side of struct vcpu (vcpu.h): one #VMEXIT in flight on this CPU. */
#ifndef HV_SVM_VCPU_H
#define HV_SVM_VCPU_H

#include <hv/svm/svm.h>
#include <hv/vcpu.h>

struct svm_exit {
    struct vcpu vcpu;           /* first: a struct vcpu * is a struct svm_exit * */
    struct svm_cpu *s;
    struct vmcb *vmcb;
    u64 code;
};

extern const struct vcpu_ops svm_vcpu_ops;

/*
 * The bytes at guest CS:RIP, read through the guest's own paging (guest_mem.c): up to 'len', fewer
 * when the next page is not mapped. Returns how many bytes were read (0: RIP itself is not mapped).
 */
u32 svm_fetch_insn(struct svm_exit *x, u8 *buf, u32 len);

#endif
