// CqTag: what every tag on campaignd's completion queues is. The server's
// polling threads call Proceed(ok) for each event a queue returns; calls,
// streams and timer alarms all implement it.
#ifndef CAMPAIGND_SERVER_DISPATCH_CQ_TAG_H_
#define CAMPAIGND_SERVER_DISPATCH_CQ_TAG_H_

namespace campaigns::dispatch {

class CqTag {
 public:
  virtual ~CqTag() = default;
  // `ok`: the operation succeeded (for an alarm: it fired, not cancelled).
  virtual void Proceed(bool ok) = 0;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_CQ_TAG_H_
