"""Primitive-toy grasping with the Franka Panda in pybullet and MuJoCo (issue 10).

One robot file (pybullet_data's ``franka_panda/panda.urdf``), one scene and
one task in two physics engines, so a policy can be tested across simulators:

- :mod:`.toys`: random toys (1-5 intersecting primitives), pure functions of a seed;
- :mod:`.objects`: unseen pybullet_data objects (duck, mug, random_urdfs ...);
- :mod:`.shapes`: the engine-neutral body both backends build, with mass properties;
- :mod:`.sim_pybullet`, :mod:`.sim_mujoco`: the two backends;
- :mod:`.env`: ``simlab/ToyGrasp-v0`` (pybullet) and ``simlab/ToyGraspMJ-v0`` (MuJoCo);
- :mod:`.kinematics`: FK / Jacobian / IK of the URDF chain (numpy, shared by both engines);
- :mod:`.expert`: the scripted antipodal top-down grasp; :mod:`.ceiling`: its success rates;
- :mod:`.dataset`: ``simlab collect toygrasp`` (sharded HDF5 demos);
- :mod:`.render`: ``simlab render-toys``.

Nothing here imports pybullet or mujoco at import time: they are optional
(``pip install 'simlab[grasp]'``) and loaded when an env is built.
"""
