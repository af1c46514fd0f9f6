/* Task-switch emulation for VT-x, where every task switch exits (task_switch.c). */
#ifndef HV_VMX_TASK_SWITCH_H
#define HV_VMX_TASK_SWITCH_H

#include <hv/segments.h>
#include <hv/vcpu.h>
#include <hv/vmx/vmx.h>

/* Perform the task switch the exit describes (qualification: SDM Vol. 3C 28.2.1, Table 28-2). */
void vmx_task_switch(struct vcpu *v, u64 qual);

#endif
